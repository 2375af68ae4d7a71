'use strict';
// Entry point of the save step: runs `uv-nox-cache save`.
require('./launch.js').run('save');
