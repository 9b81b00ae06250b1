//! The one integration-test binary: a real server on port 0, real WebSocket clients, the real
//! models and real recordings (fetched by the test command into `models/`).

mod bad_input;
mod capacity;
mod channels;
mod common;
mod conversation;
mod crash;
mod deploy;
mod device;
mod files;
mod fleet;
mod page;
mod rest;
mod schema;
mod security;
mod sentry;
mod shutdown;
mod speaker;
mod stages;
mod streaming;
mod tools;
mod vendors;
