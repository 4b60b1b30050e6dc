//! asyncmsg-quic (being written).
