// The inversify module on inversify 8.
import { inversifyModuleSuite } from '../../support/inversifyModuleSuite';

describe('createTmmModule on inversify 8', () => inversifyModuleSuite(8));
