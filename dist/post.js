'use strict';
// Entry point of the post step: runs `uv-nox-cache save`.
require('./launch.js').run('save');
