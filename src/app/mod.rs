//! The application layer: handlers with extractors, answers, blueprints,
//! middleware and hooks. The endpoint compiles all of it into plain routes for
//! the router actor.

pub mod blueprint;
pub mod context;
pub mod extract;
pub mod handler;
pub mod handler_actor;
pub mod middleware;
pub mod request_body;
pub mod respond;
pub mod services;
pub mod state;
