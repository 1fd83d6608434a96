//! Example charm (being written).
