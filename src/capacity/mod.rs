//! `aivo-load capacity`: the saturation search, the scalability curve and the storage model.

pub mod forecast;
pub mod storage;
