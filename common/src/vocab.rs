//! One definition per vocabulary: a closed set of names on the wire
//! (statuses, event types, sort keys, summary groups and intervals, request
//! parameters). `vocabulary!` declares the enum and its names together, and
//! derives the rest — every value in order, the name of a value, the value
//! of a name — so adding a value is one edit, and every `match` on the enum
//! then points at what else must handle it.

/// A closed set of names.
pub trait Word: Copy + Sized + 'static {
    /// Every value, in declaration order.
    fn all() -> &'static [Self];
    /// The value's name on the wire.
    fn as_str(self) -> &'static str;
    /// The value with this name.
    fn parse(s: &str) -> Option<Self> {
        Self::all().iter().copied().find(|w| w.as_str() == s)
    }
    /// Every name, for error messages: `a, b, c`.
    fn names() -> String {
        Self::all()
            .iter()
            .map(|w| w.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Declares an enum whose variants each have a name on the wire:
/// `vocabulary! { pub enum Dir { Asc = "asc", Desc = "desc", } }`.
#[macro_export]
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The value's name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value with this name.
            pub fn parse(s: &str) -> Option<$name> {
                <$name as $crate::vocab::Word>::parse(s)
            }
        }

        impl $crate::vocab::Word for $name {
            fn all() -> &'static [Self] {
                &$name::ALL
            }
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Word;

    crate::vocabulary! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Colour {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn names_and_values_round_trip() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::DarkBlue]);
        for c in Colour::ALL {
            assert_eq!(Colour::parse(c.as_str()), Some(c));
        }
        assert_eq!(Colour::parse("blue"), None);
        assert_eq!(Colour::names(), "red, dark_blue");
    }
}
