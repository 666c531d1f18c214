import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyRequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # Get the data sent by the client
        data = self.request.recv(1024)

        # Do something with the data
        print(data)

        # Send a response back to the client
        self.request.sendall(b'Hello, world!')

# Create a Unix stream server
server = socketserver.UnixStreamServer(os.environ.get("EXAMPLE_PATH", '/tmp/my_socket'), MyRequestHandler)  # path from the environment

# Start the server
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
