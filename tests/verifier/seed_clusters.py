import ipaddress as ipa

from kspec import ir


def ip(x): return ipa.ip_address(x)
def net(x): return ipa.ip_network(x)
def cluster(policy=ir.TrafficPolicy.CLUSTER, typ=ir.ServiceType.NODE_PORT, checks=()):
    nodes = tuple(ir.Node(f"node{i}", (ip(f"10.240.0.{2+i}"),), (net(f"10.244.{i}.0/24"),)) for i in (1,2,3))
    pod = ir.Pod("default","source-ip-app-0","node1",ip("10.244.1.5"),(("run","source-ip-app"),))
    client_pod = ir.Pod("default","busybox","node2",ip("10.244.2.7"))
    svc = ir.Service("default","nodeport",typ,(ip("10.0.171.239"),),
        (ir.ServicePort("",ir.Protocol.TCP,80,8080,30080),),
        selector=(("run","source-ip-app"),),
        endpoints=(ir.Endpoint(ip("10.244.1.5"),(ir.EndpointPort("",ir.Protocol.TCP,8080),),"node1",pod="default/source-ip-app-0"),),
        external_traffic_policy=policy,
        load_balancer_ingress=(ir.LoadBalancerIngress(ip("104.198.149.140")),) if typ is ir.ServiceType.LOAD_BALANCER else (),
        health_check_node_port=32122 if typ is ir.ServiceType.LOAD_BALANCER and policy is ir.TrafficPolicy.LOCAL else 0)
    clients = (ir.Client("internet", ir.ClientKind.EXTERNAL, ip("104.132.1.79")),
               ir.Client("busybox", ir.ClientKind.POD, ip("10.244.2.7"), "node2"),
               ir.Client("node3proc", ir.ClientKind.NODE, None, "node3"))
    return ir.Cluster("demo", nodes, ir.ProxyConfig(cluster_cidrs=(net("10.244.0.0/16"),)), (pod, client_pod), (svc,), clients, checks=checks)
