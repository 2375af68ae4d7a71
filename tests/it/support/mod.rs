//! Shared test support.

#![allow(dead_code)]

pub mod action;
pub mod tools;
