//! Checked parameters, in the style of linfa's `ParamGuard`: a settings type (deserialised from a
//! spec or built from flags, possibly invalid) becomes a [`Checked`] value only through
//! [`ParamGuard::check`], and the functions that run (`DpSgd::new`, `fit`, `train_on`, `execute`)
//! take only checked ones. So each setting is validated once, where it enters, and errors name the
//! field at fault there; nothing downstream checks again.

use std::ops::Deref;

/// A value whose [`ParamGuard::validate`] passed. Read it through `Deref`; it cannot be changed
/// (a changed value must be checked again) and can be made only by [`ParamGuard::check`] or, for
/// a part of a checked whole, by the whole's accessors in this crate.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked<T>(T);

impl<T> Checked<T> {
    /// The checked value back, for changing and checking again.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// A part of a checked whole, or a value checked in another way (e.g. the calibrated σ of a
    /// checked run): only where the caller's checks imply `value.validate()` passes.
    pub(crate) fn assume_checked(value: T) -> Self {
        Checked(value)
    }
}

impl<T> Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A settings type with invariants, checked once into a [`Checked`] value.
pub trait ParamGuard: Sized {
    /// The module's error type, naming the field and the value at fault.
    type Error;

    /// Every invariant the code that runs with these settings relies on.
    fn validate(&self) -> Result<(), Self::Error>;

    /// `self`, checked.
    fn check(self) -> Result<Checked<Self>, Self::Error> {
        self.validate()?;
        Ok(Checked(self))
    }

    /// A checked copy of `self`.
    fn check_ref(&self) -> Result<Checked<Self>, Self::Error>
    where
        Self: Clone,
    {
        self.clone().check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Rate(f64);

    impl ParamGuard for Rate {
        type Error = String;
        fn validate(&self) -> Result<(), String> {
            (self.0 > 0.0 && self.0 <= 1.0)
                .then_some(())
                .ok_or_else(|| format!("rate {} not in (0, 1]", self.0))
        }
    }

    #[test]
    fn only_valid_values_become_checked() {
        assert_eq!(*Rate(0.5).check().unwrap(), Rate(0.5));
        assert_eq!(Rate(1.5).check().unwrap_err(), "rate 1.5 not in (0, 1]");
        assert_eq!(Rate(0.2).check_ref().unwrap().into_inner(), Rate(0.2));
    }
}
