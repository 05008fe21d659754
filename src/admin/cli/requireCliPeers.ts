import { requirePeer } from '../../errors/TmmError';

// The `tmm` command needs commander (an optional peer of tmm): named at once when it is missing.
requirePeer('commander', 'the tmm command line');
