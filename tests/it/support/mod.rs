//! Shared test support.

#![allow(dead_code)]

pub mod action;
pub mod official;
pub mod tools;

#[path = "../../cache_server/mod.rs"]
pub mod cache_server;
