//! Collectives: triggers g(x), strategies h(x, y), several collectives, coordination noise,
//! success metrics.
