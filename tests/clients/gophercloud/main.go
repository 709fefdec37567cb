// A gophercloud client (Debian's golang-github-gophercloud-gophercloud-dev, the
// library under Kubernetes' manila-csi and the Terraform OpenStack provider),
// driven the way those tools drive a share: authenticate with a password
// against Keystone v3, find the share service in the token's catalog, read
// the API versions, create a share, wait for it, grant an IP rule, read the
// export locations, delete the share and wait until it is gone.
//
// Inputs come from the environment (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
// OS_PROJECT_NAME, OS_DOMAIN_NAME, OS_REGION_NAME, SHARE_ACCESS_TO,
// SHARE_KEEP=1 to leave the share in place). Each step prints one JSON line
// on stdout, so the Python test asserts on what the client saw; any error
// ends the program with exit status 1 and the error on stderr.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/gophercloud/gophercloud"
	"github.com/gophercloud/gophercloud/openstack"
	"github.com/gophercloud/gophercloud/openstack/sharedfilesystems/apiversions"
	"github.com/gophercloud/gophercloud/openstack/sharedfilesystems/v2/shares"
)

func emit(step string, value interface{}) {
	line, err := json.Marshal(map[string]interface{}{"step": step, "value": value})
	if err != nil {
		fail("encode "+step, err)
	}
	fmt.Println(string(line))
}

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}

// waitFor polls every 100 ms: gophercloud.WaitFor's 1 s period would only
// make the test slower, the requests are the same.
func waitFor(what string, timeout time.Duration, done func() (bool, error)) {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if err != nil {
			fail(what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			fail(what, fmt.Errorf("not done after %s", timeout))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func main() {
	opts, err := openstack.AuthOptionsFromEnv()
	if err != nil {
		fail("auth options", err)
	}
	provider, err := openstack.AuthenticatedClient(opts)
	if err != nil {
		fail("authenticate", err)
	}
	emit("authenticated", provider.TokenID != "")

	client, err := openstack.NewSharedFileSystemV2(provider, gophercloud.EndpointOpts{
		Region: os.Getenv("OS_REGION_NAME"),
	})
	if err != nil {
		fail("catalog", err)
	}
	emit("endpoint", client.Endpoint)

	version, err := apiversions.Get(client, "v2").Extract()
	if err != nil {
		fail("api version", err)
	}
	emit("api_version", version)
	// manila-csi pins the microversion it needs; 2.9 is the lowest with
	// export locations of their own.
	client.Microversion = "2.9"

	share, err := shares.Create(client, shares.CreateOpts{
		ShareProto: "NFS", Size: 1, Name: "gophercloud-share",
	}).Extract()
	if err != nil {
		fail("create", err)
	}
	emit("created", map[string]interface{}{"id": share.ID, "status": share.Status,
		"created_at": share.CreatedAt})

	waitFor("wait available", 120*time.Second, func() (bool, error) {
		current, err := shares.Get(client, share.ID).Extract()
		if err != nil {
			return false, err
		}
		if current.Status == "error" {
			return false, fmt.Errorf("share %s went to error", share.ID)
		}
		return current.Status == "available", nil
	})
	emit("available", share.ID)

	rule, err := shares.GrantAccess(client, share.ID, shares.GrantAccessOpts{
		AccessType: "ip", AccessTo: os.Getenv("SHARE_ACCESS_TO"), AccessLevel: "rw",
	}).Extract()
	if err != nil {
		fail("grant access", err)
	}
	emit("granted", map[string]string{"id": rule.ID, "access_to": rule.AccessTo})

	waitFor("wait rule active", 60*time.Second, func() (bool, error) {
		rules, err := shares.ListAccessRights(client, share.ID).Extract()
		if err != nil {
			return false, err
		}
		for _, r := range rules {
			if r.ID == rule.ID {
				if r.State == "error" {
					return false, fmt.Errorf("rule %s went to error", r.ID)
				}
				return r.State == "active", nil
			}
		}
		return false, fmt.Errorf("rule %s not listed", rule.ID)
	})
	emit("rule_active", rule.ID)

	locations, err := shares.ListExportLocations(client, share.ID).Extract()
	if err != nil {
		fail("export locations", err)
	}
	emit("export_locations", locations)

	if os.Getenv("SHARE_KEEP") == "1" {
		return
	}
	if err := shares.Delete(client, share.ID).ExtractErr(); err != nil {
		fail("delete", err)
	}
	waitFor("wait deleted", 120*time.Second, func() (bool, error) {
		_, err := shares.Get(client, share.ID).Extract()
		if _, gone := err.(gophercloud.ErrDefault404); gone {
			return true, nil
		}
		return false, err
	})
	emit("deleted", share.ID)
}
