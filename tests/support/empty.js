// Served in place of loopback-ice.js where a page must offer every candidate.
