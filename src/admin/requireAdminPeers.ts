import { requirePeer } from '../errors/TmmError';

// `tmm/admin` needs the HTTP server and the metrics library; both are optional peers of tmm, so an app
// without the admin installs neither. Checked first thing, so a missing one is named at once.
requirePeer('fastify', 'tmm/admin (the admin HTTP API and console)');
requirePeer('prom-client', 'tmm/admin (the admin metrics)');
