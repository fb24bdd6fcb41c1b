//! Handler and mux identifiers (spec §6.1, §1).

use std::fmt;

/// Identifies a handler: field 4 of the tuple.
///
/// MinIO's list is append-only and ids are never reused; the constants below are all of them.
/// Valid ids are 1..=79 (1..=77 production, 78 and 79 for tests); 0 is invalid.
#[derive(Clone, Copy, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct HandlerId(pub u8);

macro_rules! handler_ids {
    ($($value:literal $konst:ident $name:literal $prefix:literal;)*) => {
        impl HandlerId {
            $(
                #[doc = concat!("MinIO handler `", $name, "` (trace prefix `", $prefix, "`).")]
                pub const $konst: HandlerId = HandlerId($value);
            )*

            /// The name MinIO prints for this handler (e.g. `CheckParts3` for 77), or `None`
            /// when the id is not a valid handler id.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($name),)*
                    128 => Some("Service"),
                    _ => None,
                }
            }

            /// The trace prefix MinIO uses for this handler (`lockR`, `storageR`, `peer`, ...;
            /// `grid` for handlers without one), or `None` for invalid ids.
            pub const fn trace_prefix(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($prefix),)*
                    128 => Some("service"),
                    _ => None,
                }
            }
        }
    };
}

handler_ids! {
    1 LOCK_LOCK "LockLock" "lockR";
    2 LOCK_R_LOCK "LockRLock" "lockR";
    3 LOCK_UNLOCK "LockUnlock" "lockR";
    4 LOCK_R_UNLOCK "LockRUnlock" "lockR";
    5 LOCK_REFRESH "LockRefresh" "lockR";
    6 LOCK_FORCE_UNLOCK "LockForceUnlock" "lockR";
    7 WALK_DIR "WalkDir" "storageR";
    8 STAT_VOL "StatVol" "storageR";
    9 DISK_INFO "DiskInfo" "storageR";
    10 NS_SCANNER "NSScanner" "storageR";
    11 READ_XL "ReadXL" "storageR";
    12 READ_VERSION "ReadVersion" "storageR";
    13 DELETE_FILE "DeleteFile" "storageR";
    14 DELETE_VERSION "DeleteVersion" "storageR";
    15 UPDATE_METADATA "UpdateMetadata" "storageR";
    16 WRITE_METADATA "WriteMetadata" "storageR";
    17 CHECK_PARTS "CheckParts" "storageR";
    18 RENAME_DATA "RenameData" "storageR";
    19 RENAME_FILE "RenameFile" "storageR";
    20 READ_ALL "ReadAll" "storageR";
    21 SERVER_VERIFY "ServerVerify" "bootstrap";
    22 TRACE "Trace" "peer";
    23 LISTEN "Listen" "peer";
    24 DELETE_BUCKET_METADATA "DeleteBucketMetadata" "peer";
    25 LOAD_BUCKET_METADATA "LoadBucketMetadata" "peer";
    26 RELOAD_SITE_REPLICATION_CONFIG "ReloadSiteReplicationConfig" "peer";
    27 RELOAD_POOL_META "ReloadPoolMeta" "peer";
    28 STOP_REBALANCE "StopRebalance" "peer";
    29 LOAD_REBALANCE_META "LoadRebalanceMeta" "peer";
    30 LOAD_TRANSITION_TIER_CONFIG "LoadTransitionTierConfig" "peer";
    31 DELETE_POLICY "DeletePolicy" "peer";
    32 LOAD_POLICY "LoadPolicy" "peer";
    33 LOAD_POLICY_MAPPING "LoadPolicyMapping" "peer";
    34 DELETE_SERVICE_ACCOUNT "DeleteServiceAccount" "peer";
    35 LOAD_SERVICE_ACCOUNT "LoadServiceAccount" "peer";
    36 DELETE_USER "DeleteUser" "peer";
    37 LOAD_USER "LoadUser" "peer";
    38 LOAD_GROUP "LoadGroup" "peer";
    39 HEAL_BUCKET "HealBucket" "heal";
    40 MAKE_BUCKET "MakeBucket" "peerS3";
    41 HEAD_BUCKET "HeadBucket" "peerS3";
    42 DELETE_BUCKET "DeleteBucket" "peerS3";
    43 GET_METRICS "GetMetrics" "peer";
    44 GET_RESOURCE_METRICS "GetResourceMetrics" "peer";
    45 GET_MEM_INFO "GetMemInfo" "peer";
    46 GET_PROC_INFO "GetProcInfo" "peer";
    47 GET_OS_INFO "GetOSInfo" "peer";
    48 GET_PARTITIONS "GetPartitions" "peer";
    49 GET_NET_INFO "GetNetInfo" "peer";
    50 GET_CPUS "GetCPUs" "peer";
    51 SERVER_INFO "ServerInfo" "peer";
    52 GET_SYS_CONFIG "GetSysConfig" "peer";
    53 GET_SYS_SERVICES "GetSysServices" "peer";
    54 GET_SYS_ERRORS "GetSysErrors" "peer";
    55 GET_ALL_BUCKET_STATS "GetAllBucketStats" "peer";
    56 GET_BUCKET_STATS "GetBucketStats" "peer";
    57 GET_SR_METRICS "GetSRMetrics" "peer";
    58 GET_PEER_METRICS "GetPeerMetrics" "peer";
    59 GET_METACACHE_LISTING "GetMetacacheListing" "peer";
    60 UPDATE_METACACHE_LISTING "UpdateMetacacheListing" "peer";
    61 GET_PEER_BUCKET_METRICS "GetPeerBucketMetrics" "peer";
    62 STORAGE_INFO "StorageInfo" "peer";
    63 CONSOLE_LOG "ConsoleLog" "peer";
    64 LIST_DIR "ListDir" "storageR";
    65 GET_LOCKS "GetLocks" "grid";
    66 BACKGROUND_HEAL_STATUS "BackgroundHealStatus" "grid";
    67 GET_LAST_DAY_TIER_STATS "GetLastDayTierStats" "grid";
    68 SIGNAL_SERVICE "SignalService" "grid";
    69 GET_BANDWIDTH "GetBandwidth" "grid";
    70 WRITE_ALL "WriteAll" "storageR";
    71 LIST_BUCKETS "ListBuckets" "peerS3";
    72 RENAME_DATA_INLINE "RenameDataInline" "storageR";
    73 RENAME_DATA2 "RenameData2" "storageR";
    74 CHECK_PARTS2 "CheckParts2" "storageR";
    75 RENAME_PART "RenamePart" "storageR";
    76 CLEAR_UPLOAD_ID "ClearUploadID" "peer";
    77 CHECK_PARTS3 "CheckParts3" "storageR";
    78 TEST "Test" "grid";
    79 TEST2 "Test2" "grid";
}

impl HandlerId {
    /// The invalid id 0 (MinIO's `handlerInvalid`).
    pub const INVALID: HandlerId = HandlerId(0);
    /// One past the last MinIO handler id (MinIO's `handlerLast`).
    pub const LAST: HandlerId = HandlerId(80);
    /// The id of every named service method (rgrid's own, not MinIO's): an app's calls
    /// are told apart by their subroute, `service/method` (see `rgrid::typed::Service`).
    /// A MinIO Go node refuses it like any id it does not know ("Invalid Handler").
    pub const SERVICE: HandlerId = HandlerId(128);

    /// Whether this is a valid handler id: MinIO's 1..=79, or [`HandlerId::SERVICE`].
    /// Other ids are reserved.
    #[inline]
    pub const fn is_valid(self) -> bool {
        (self.0 > 0 && self.0 < Self::LAST.0) || self.0 == Self::SERVICE.0
    }

    /// Whether this is one of the two test ids (78, 79), which MinIO lets tests re-register.
    #[inline]
    pub const fn is_test(self) -> bool {
        self.0 == Self::TEST.0 || self.0 == Self::TEST2.0
    }
}

impl fmt::Display for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "HandlerId({})", self.0),
        }
    }
}

impl fmt::Debug for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HandlerId({} {})",
            self.0,
            self.name().unwrap_or("invalid")
        )
    }
}

impl From<u8> for HandlerId {
    fn from(v: u8) -> Self {
        HandlerId(v)
    }
}

/// Identifies one request or stream on a connection: field 1 of the tuple.
///
/// Each side allocates ids for the muxes it initiates from its own counter starting at 1, so
/// the two directions have separate namespaces. Id 0 is reserved for connection-level
/// messages (pings, merged containers, the handshake).
#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct MuxId(pub u64);

impl MuxId {
    /// The connection-level id.
    pub const CONNECTION: MuxId = MuxId(0);
}

impl fmt::Display for MuxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for MuxId {
    fn from(v: u64) -> Self {
        MuxId(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_valid_id_has_a_name_and_prefix() {
        for id in 1..80u8 {
            let h = HandlerId(id);
            assert!(h.is_valid());
            assert!(h.name().is_some(), "{id}");
            assert!(h.trace_prefix().is_some(), "{id}");
        }
        for id in [0u8, 80, 127, 129, 255] {
            assert!(!HandlerId(id).is_valid());
            assert!(HandlerId(id).name().is_none());
        }
        assert!(HandlerId::SERVICE.is_valid());
        assert_eq!(HandlerId::SERVICE.to_string(), "Service");
        assert_eq!(HandlerId::DISK_INFO.0, 9);
        assert_eq!(HandlerId(77).to_string(), "CheckParts3");
        assert_eq!(HandlerId::LIST_DIR.0, 64);
        assert_eq!(HandlerId::TEST.0, 78);
        assert!(HandlerId::TEST2.is_test());
        assert_eq!(HandlerId(200).to_string(), "HandlerId(200)");
    }
}
