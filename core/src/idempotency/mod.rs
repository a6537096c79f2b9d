//! Idempotency keys: begin / complete / abandon records with leases.
