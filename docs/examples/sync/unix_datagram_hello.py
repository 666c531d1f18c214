import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyRequestHandler(socketserver.DatagramRequestHandler):
    def handle(self):
        # Get the data sent by the client
        data, socket = self.request

        # Do something with the data
        print(data)

        # Send a response back to the client
        socket.sendto(b'Hello, world!', self.client_address)

# Create a Unix datagram server
server = socketserver.UnixDatagramServer(os.environ.get("EXAMPLE_PATH", '/tmp/my_socket'), MyRequestHandler)  # path from the environment

# Start the server
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
