package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// Node is one registered pushd instance.
type Node struct {
	// ID is the node's leased node ID (service meta node_id).
	ID int
	// Name is the node's stable name (service meta node_name).
	Name string
	// ServiceID is the Consul service ID, "<service name>-<ID>".
	ServiceID string
	// Address is the advertised WebSocket host (the Consul node address
	// when the service did not set one).
	Address string
	// Port is the advertised WebSocket port.
	Port int
	// Meta is the service meta, including node_id, node_name and start_time.
	Meta map[string]string
	// Healthy reports whether all the instance's checks pass.
	Healthy bool
}

// serviceID is "pushd-<id>" with the default service name; deriving it from
// the service name keeps two clusters on one agent apart.
func (r *Registry) serviceID(id int) string { return r.cfg.ServiceName + "-" + strconv.Itoa(id) }

func (r *Registry) checkID(id int) string { return "service:" + r.serviceID(id) }

// register (re-)registers the service with a passing TTL check. It is
// idempotent, so it also repairs an agent that restarted and forgot us.
func (r *Registry) register(ctx context.Context, id int) error {
	meta := make(map[string]string, len(r.cfg.Meta)+3)
	maps.Copy(meta, r.cfg.Meta)
	meta[MetaNodeID] = strconv.Itoa(id)
	meta[MetaNodeName] = r.cfg.NodeName
	meta[MetaStartTime] = r.startTime.Format(time.RFC3339)
	reg := &api.AgentServiceRegistration{
		ID:      r.serviceID(id),
		Name:    r.cfg.ServiceName,
		Address: r.cfg.Address,
		Port:    r.cfg.Port,
		Meta:    meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        r.checkID(id),
			Name:                           "pushd node-ID lease",
			Notes:                          "passed by the node while it holds its node-ID lease",
			TTL:                            r.cfg.CheckTTL.String(),
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: r.cfg.DeregisterCriticalAfter.String(),
		},
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("register service %s: %w", reg.ID, err)
	}
	return nil
}

func (r *Registry) deregister(ctx context.Context, id int) error {
	if err := r.client.Agent().ServiceDeregisterOpts(r.serviceID(id), qo(ctx)); err != nil {
		return fmt.Errorf("pushd: registry: deregister service %s: %w", r.serviceID(id), err)
	}
	return nil
}

// passCheck passes the TTL check; if the agent no longer knows the check
// (it restarted without state), the service is registered again.
func (r *Registry) passCheck(ctx context.Context, id int) error {
	ctx, cancel := context.WithTimeout(ctx, max(r.cfg.CheckTTL/3, time.Second))
	defer cancel()
	err := r.client.Agent().UpdateTTLOpts(r.checkID(id), "node-ID lease held", api.HealthPassing, qo(ctx))
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		r.log.Info("pushd: consul agent forgot the service, registering again", "service_id", r.serviceID(id))
		return r.register(ctx, id)
	}
	return err
}

func (r *Registry) failCheck(ctx context.Context, id int, note string) error {
	return r.client.Agent().UpdateTTLOpts(r.checkID(id), note, api.HealthCritical, qo(ctx))
}

// Nodes returns the live pushd instances (all checks passing), sorted by ID.
func (r *Registry) Nodes(ctx context.Context) ([]Node, error) {
	nodes, _, err := listNodes(ctx, r.client, r.cfg.ServiceName, 0)
	return nodes, err
}

// ListNodes returns the live pushd instances like Registry.Nodes, without
// leasing anything; it is meant for tools such as pushctl. Only the
// connection fields and ServiceName of cfg are used.
func ListNodes(ctx context.Context, cfg Config) ([]Node, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = DefaultServiceName
	}
	client, transport, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	defer transport.CloseIdleConnections()
	nodes, _, err := listNodes(ctx, client, cfg.ServiceName, 0)
	return nodes, err
}

// listNodes runs one (blocking, if waitIndex > 0) health query for passing
// instances and returns them with the query's index.
func listNodes(ctx context.Context, client *api.Client, service string, waitIndex uint64) ([]Node, uint64, error) {
	q := &api.QueryOptions{WaitIndex: waitIndex, WaitTime: watchWait}
	entries, meta, err := client.Health().Service(service, "", true, q.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("pushd: registry: list %q instances: %w", service, err)
	}
	nodes := make([]Node, 0, len(entries))
	for _, e := range entries {
		if n, ok := toNode(e); ok {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b Node) int { return a.ID - b.ID })
	return nodes, meta.LastIndex, nil
}

// toNode converts a health entry; instances without a valid node_id meta
// were not registered by this package and are skipped.
func toNode(e *api.ServiceEntry) (Node, bool) {
	if e.Service == nil {
		return Node{}, false
	}
	id, err := strconv.Atoi(e.Service.Meta[MetaNodeID])
	if err != nil || id < 0 {
		return Node{}, false
	}
	addr := e.Service.Address
	if addr == "" && e.Node != nil {
		addr = e.Node.Address
	}
	return Node{
		ID:        id,
		Name:      e.Service.Meta[MetaNodeName],
		ServiceID: e.Service.ID,
		Address:   addr,
		Port:      e.Service.Port,
		Meta:      maps.Clone(e.Service.Meta),
		Healthy:   e.Checks.AggregatedStatus() == api.HealthPassing,
	}, true
}
