import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # Receive message from client
        data = self.request.recv(1024)

        # Send message back to client
        self.request.send(data)

# Create server
server = socketserver.TCPServer(("0.0.0.0", int(os.environ.get("EXAMPLE_PORT", "8080"))), EchoHandler)  # port from the environment

# Start server
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
