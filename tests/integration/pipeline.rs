//! The pipeline as a whole: every decision is recorded, whatever the caller
//! does with its connection after sending the request.

mod delivery;
