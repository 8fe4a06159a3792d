//! `aivo-load capacity`: the saturation search, the scalability curve and the storage model.

pub mod search;
pub mod usl;
