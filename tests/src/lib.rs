//! End-to-end tests of rdc (the recorder and uplink issues add them here).
