//! Helpers every layer may use: wall-clock time and UTC days ([`clock`]), and text for people
//! (aligned tables, counts, escaping peer text: [`text`]).

pub mod clock;
pub mod text;
