//! In-memory link with seeded impairments, and pcap capture.
