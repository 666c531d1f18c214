import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoServer(socketserver.BaseRequestHandler):
    def handle(self):
        # Receive the client's message
        data = self.request.recv(1024).decode()

        # Print the message
        print(f"Received message from {self.client_address}: {data}")

        # Send the message back to the client
        self.request.sendall(data.encode())

if __name__ == "__main__":
    # Create the server
    server = socketserver.TCPServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "5000"))), EchoServer)  # port from the environment

    # Start the server
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
