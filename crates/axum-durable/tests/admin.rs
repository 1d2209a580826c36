//! Admin router tests.
