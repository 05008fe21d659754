// The inversify module on inversify 7.
jest.mock('inversify', () => jest.requireActual('inversify7'));
import { inversifyModuleSuite } from '../../support/inversifyModuleSuite';

describe('createTmmModule on inversify 7', () => inversifyModuleSuite(7));
