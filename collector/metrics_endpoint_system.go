package collector

// The master host figures of /info beyond CPU, memory and network (DESIGN.md,
// "History views"): swap, disk and the host's own uptime.
var (
	famEndpointSwapUsed  = family{"nodepass_endpoint_swap_used_bytes", "gauge", "Swap used on the master host in bytes."}
	famEndpointSwapTotal = family{"nodepass_endpoint_swap_total_bytes", "gauge", "Swap of the master host in bytes."}
	famEndpointDiskRead  = family{"nodepass_endpoint_disk_read_bytes_total", "counter", "Bytes read from the master host's disks, as the master reports it."}
	famEndpointDiskWrite = family{"nodepass_endpoint_disk_written_bytes_total", "counter", "Bytes written to the master host's disks, as the master reports it."}
	famEndpointSysUptime = family{"nodepass_endpoint_system_uptime_seconds", "gauge", "Uptime of the master host (not the NodePass process) in seconds."}
)

// endpointSystem writes the swap, disk and system uptime families of every
// endpoint whose /info has been read.
func (w *textWriter) endpointSystem(eps []*Endpoint) {
	for _, g := range []struct {
		f   family
		val func(*Info) uint64
	}{
		{famEndpointSwapUsed, func(i *Info) uint64 { return i.SwapUsed }},
		{famEndpointSwapTotal, func(i *Info) uint64 { return i.SwapTotal }},
		{famEndpointDiskRead, func(i *Info) uint64 { return i.DiskRead }},
		{famEndpointDiskWrite, func(i *Info) uint64 { return i.DiskWrite }},
		{famEndpointSysUptime, func(i *Info) uint64 { return i.SysUptime }},
	} {
		w.header(g.f)
		for _, e := range eps {
			if e.Info.Valid {
				w.start(g.f.name, e.Name)
				w.end()
				w.uint(g.val(&e.Info))
			}
		}
	}
}
