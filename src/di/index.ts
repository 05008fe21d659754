// The `tmm/inversify` entry point: the only code that loads inversify (the app's own, 6, 7 or 8).
import { requirePeer } from '../errors/TmmError';

requirePeer('inversify', 'tmm/inversify');

export { TMM } from './tokens';
export type { TmmToken, TmmAdminHandle } from './tokens';
export { createTmmModule } from './createTmmModule';
export type { TmmContainerModule } from './createTmmModule';
export { createTmmAdminModule } from './createTmmAdminModule';
