package devnet_test

import (
	"fmt"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// The devnet's --adversaries flag names labelled adversary roles and their
// counts.
func ExampleParseAdversaries() {
	m, err := devnet.ParseAdversaries("slow=1,lazy=2")
	if err != nil {
		panic(err)
	}
	fmt.Println(m[node.RoleSlow], m[node.RoleLazy], m[node.RoleReplay], node.RoleLazy.Adversary())
	// Output: 1 2 0 true
}
