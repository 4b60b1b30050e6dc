//! asyncmsg-wire (being written).
