//! Wire formats: typed views over byte buffers (parse never panics, emit never allocates).
