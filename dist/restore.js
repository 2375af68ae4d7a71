'use strict';
// Entry point of the restore step: runs `uv-nox-cache restore`.
require('./launch.js').run('restore');
