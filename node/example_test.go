package node_test

import (
	"fmt"

	"github.com/poai-network/poai/node"
)

// The devnet's --adversaries flag names labelled adversary roles and their
// counts.
func ExampleParseAdversaries() {
	m, err := node.ParseAdversaries("slow=1,lazy=2")
	if err != nil {
		panic(err)
	}
	fmt.Println(m[node.RoleSlow], m[node.RoleLazy], m[node.RoleReplay], node.RoleLazy.Adversary())
	// Output: 1 2 0 true
}
