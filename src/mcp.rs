//! Understand stage: the MCP wire format — JSON-RPC messages, the two
//! Streamable HTTP eras, and Server-Sent Events.

pub mod era;
pub mod jsonrpc;
pub mod methods;
pub mod sse;

pub use era::Era;
pub use jsonrpc::{Envelope, Message, MessageKind, ToolCall};
