def init_net(net, gpu_ids=None):
    if gpu_ids:
        net.to(gpu_ids[0])
    return net
