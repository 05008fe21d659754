// Copies what tsc does not emit into dist/: the admin console's static files.
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
fs.cpSync(path.join(root, 'src/admin/console'), path.join(root, 'dist/src/admin/console'), { recursive: true });
