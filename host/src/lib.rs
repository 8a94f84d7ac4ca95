pub mod calstate;
pub mod classify;
pub mod grouping;
pub mod inputs;
pub mod steps;
