'use strict';
// Entry point of the main step: runs `uv-nox-cache restore`.
require('./launch.js').run('restore');
