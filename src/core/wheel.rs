//! Hierarchical timer wheel. (stub, being written)
