//! `toolgate_policy!`: turns a [`Policy`](crate::Policy) into the exports of
//! ABI version 1. The macro is the only place a module meets the ABI.

/// Generates every export of the toolgate policy ABI for a [`Policy`](crate::Policy) type:
/// `toolgate_abi_version`, `toolgate_alloc`, `toolgate_configure`,
/// `toolgate_decide`, `toolgate_input_fields` (the policy's
/// [`INPUT_FIELDS`](crate::Policy::INPUT_FIELDS)) and
/// `toolgate_module_version` (the module crate's `CARGO_PKG_VERSION`). Use it once, in the module's `lib.rs`:
///
/// ```ignore
/// toolgate_policy_sdk::toolgate_policy!(MyPolicy);
/// ```
///
/// The exports exist only when compiling for WebAssembly, so native test
/// binaries never carry (or clash over) the ABI's symbol names.
///
/// Failure, never a trap: input that is not valid JSON, or not input of ABI
/// version 1, and a config that does not parse or is refused by
/// [`Policy::configure`](crate::Policy::configure), make `toolgate_decide`
/// return `{"error": "…"}`. That is not a decision, so the host denies the
/// call with `policy_error` and logs the text. If `toolgate_configure` is
/// never called, the first decide configures with `Config::default()`.
#[macro_export]
macro_rules! toolgate_policy {
    ($policy:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            ::std::thread_local! {
                static RUNTIME: ::core::cell::RefCell<$crate::runtime::Runtime<$policy>> =
                    const { ::core::cell::RefCell::new($crate::runtime::Runtime::new()) };
            }

            // `no_mangle` is an unsafe attribute because two symbols of one
            // name would clash at link time. These are the ABI's names and a
            // module holds exactly one policy, so each appears once.
            //
            // `with_borrow_mut` cannot find the cell borrowed: the instance
            // has one thread and nothing inside a call re-enters the exports.

            #[unsafe(no_mangle)]
            pub extern "C" fn toolgate_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn toolgate_alloc(len: i32) -> i32 {
                RUNTIME.with_borrow_mut(|runtime| runtime.alloc(len))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn toolgate_configure(ptr: i32, len: i32) -> i64 {
                RUNTIME.with_borrow_mut(|runtime| runtime.configure(ptr, len))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn toolgate_decide(ptr: i32, len: i32) -> i64 {
                RUNTIME.with_borrow_mut(|runtime| runtime.decide(ptr, len))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn toolgate_input_fields() -> i64 {
                RUNTIME.with_borrow_mut(|runtime| runtime.input_fields())
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn toolgate_module_version() -> i64 {
                // A static string: the pointer stays valid for the instance's life.
                $crate::runtime::pack(env!("CARGO_PKG_VERSION").as_bytes())
            }
        };
    };
}
