//! The relay end to end against real parts: swaks, Postfix MX hosts on 127.0.0.x, a DNS
//! server on loopback, a test CA, and the `ferry` binary (`relay serve` beside `serve`).

mod bed;
mod connector;
mod delivery;
mod links;
