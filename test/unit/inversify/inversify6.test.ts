// The inversify module on inversify 6.
jest.mock('inversify', () => jest.requireActual('inversify6'));
import { inversifyModuleSuite } from '../../support/inversifyModuleSuite';

describe('createTmmModule on inversify 6', () => inversifyModuleSuite(6));
