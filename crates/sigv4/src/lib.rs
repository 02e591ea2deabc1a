//! AWS Signature Version 4 (pure: no I/O).
