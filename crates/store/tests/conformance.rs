//! Runs the conformance suite (tests/common/suite.rs) against both store backends.

mod common;

macro_rules! instantiate {
    ($module:ident, $make:expr; $($test:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::common::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    suite::$test($make).await;
                }
            )*
        }
    };
}

macro_rules! all_tests {
    ($module:ident, $make:expr) => {
        instantiate!($module, $make;
            put_get_snapshot,
            namespaces_are_isolated,
            create_if_absent_race,
            cas_mod_revision_and_value,
            delete_with_expectations,
            concurrent_cas_counter,
            lease_expiry_removes_only_attached_keys,
            revoke_deletes_attached_keys,
            wait_wakes_on_anothers_write,
            concurrent_and_cancelled_waits_still_wake,
            wait_wakes_on_lease_expiry,
            wait_times_out_with_same_revision,
            unreachable_within_call_timeout,
        );
    };
}

all_tests!(local, LocalBackend::new());
all_tests!(etcd, EtcdBackend::new());
