// A tiny POV-Ray animation for Thresher's examples and tests: a red ball orbits a turning box
// over one turn as `clock` runs from 0 to 1 (render with +KFI1 +KFF<N> +KI0 +KF1).
#version 3.7;
#include "colors.inc"

global_settings { assumed_gamma 1.0 }

camera { location <0, 3, -7> look_at <0, 0.4, 0> angle 45 }
light_source { <5, 8, -6> color White }
background { color rgb <0.45, 0.6, 0.85> }

plane { y, 0 pigment { checker color rgb 0.9 color rgb 0.55 scale 0.8 } }
box { <-0.6, 0, -0.6>, <0.6, 1.2, 0.6> pigment { color rgb <0.15, 0.3, 0.9> }
      rotate y * 60 * clock }
sphere { <2.2 * cos(2 * pi * clock), 0.5, 2.2 * sin(2 * pi * clock)>, 0.5
         pigment { color Red } finish { specular 0.4 } }
