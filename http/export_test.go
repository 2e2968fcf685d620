package http

// Routes returns the patterns registered on the server's mux, for tests.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }
