//! An exposure's ramp in memory, as the pipeline's RampModel holds it: SCI as f32
//! `[int][group][y][x]`, GROUPDQ u8 of the same shape, PIXELDQ u32 `[y][x]`, and the primary
//! header whose S_* (step status) and R_* (reference file) keywords the steps update.
//! A 2048x2048 NIRCam exposure of 2 integrations x 10 groups is 335 MB of SCI plus 84 MB of
//! GROUPDQ, well inside the engine's memory target, so a whole exposure is held.

use mkrefs_support::header::Header;

#[derive(Clone, Debug, PartialEq)]
pub struct Ramp {
    pub nints: usize,
    pub ngroups: usize,
    pub ny: usize,
    pub nx: usize,
    /// `[int][group][y][x]`, DN.
    pub sci: Vec<f32>,
    /// `[int][group][y][x]`, JWST group flags (SATURATED, JUMP_DET, DO_NOT_USE, ...).
    pub groupdq: Vec<u8>,
    /// `[y][x]`, JWST pixel flags.
    pub pixeldq: Vec<u32>,
    /// The primary header.
    pub header: Header,
}

impl Ramp {
    /// A ramp of zeros with the given shape and header.
    pub fn zeros(nints: usize, ngroups: usize, ny: usize, nx: usize, header: Header) -> Ramp {
        let n = nints * ngroups * ny * nx;
        Ramp {
            nints,
            ngroups,
            ny,
            nx,
            sci: vec![0.0; n],
            groupdq: vec![0; n],
            pixeldq: vec![0; ny * nx],
            header,
        }
    }

    /// Pixels per frame.
    pub fn frame_len(&self) -> usize {
        self.ny * self.nx
    }

    /// Index of the first pixel of frame `(int, group)` in `sci` and `groupdq`.
    pub fn frame_start(&self, int: usize, group: usize) -> usize {
        (int * self.ngroups + group) * self.frame_len()
    }

    /// Index of pixel `(int, group, y, x)`.
    pub fn index(&self, int: usize, group: usize, y: usize, x: usize) -> usize {
        self.frame_start(int, group) + y * self.nx + x
    }
}
