package p2p

// Versioned topic names: /poai/<protocol version>/<message kind>. A breaking
// change to any wire message bumps the version of every topic.
const (
	ProtocolVersion  = "1"
	TopicClaims      = "/poai/" + ProtocolVersion + "/claims"
	TopicChallenges  = "/poai/" + ProtocolVersion + "/challenges"
	TopicCommitments = "/poai/" + ProtocolVersion + "/commitments"
	TopicOpenings    = "/poai/" + ProtocolVersion + "/openings"
	TopicReveals     = "/poai/" + ProtocolVersion + "/reveals"
	TopicRequests    = "/poai/" + ProtocolVersion + "/requests"
	TopicAttestation = "/poai/" + ProtocolVersion + "/attestations"
	// MDNSServiceTag is the service name peers advertise over mDNS.
	MDNSServiceTag = "poai-" + ProtocolVersion
	// UserAgent is announced through identify.
	UserAgent = "poai/" + ProtocolVersion
)

// Topics lists every topic a full node joins, in the order it joins them.
var Topics = []string{TopicClaims, TopicChallenges, TopicCommitments, TopicReveals, TopicOpenings, TopicAttestation, TopicRequests}
