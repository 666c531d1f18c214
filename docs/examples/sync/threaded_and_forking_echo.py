import os  # added for the tests
import trio_socketserver.sync as socketserver
from trio_socketserver.sync import ThreadingMixIn, ForkingMixIn

# Define a handler class that accepts incoming connections and echoes back the received data.
class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data = self.request.recv(1024).decode("utf-8")
        self.request.sendall(bytes(data, "utf-8"))

# Create a threaded TCP server using ThreadingMixIn.
class ThreadedEchoServer(ThreadingMixIn, socketserver.TCPServer):
    pass

# Create a forking TCP server using ForkingMixIn.
class ForkingEchoServer(ForkingMixIn, socketserver.TCPServer):
    pass

# Start the threaded server and handle incoming requests.
with ThreadedEchoServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "8080"))), EchoHandler) as server:  # port from the environment
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()

# Or start the forking server and handle incoming requests.
with ForkingEchoServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "8080"))), EchoHandler) as server:  # port from the environment
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
