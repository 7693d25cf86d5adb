//! The embedded local backend (to be built).
