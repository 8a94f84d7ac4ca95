//! The readnoise generator.
mod cds;
mod compute;
mod params;
mod single;
