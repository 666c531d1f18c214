import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyUDPHandler(socketserver.BaseRequestHandler):

    def handle(self):
        data = self.request[0].strip()
        socket = self.request[1]
        print(f"Received: {data}")
        socket.sendto(b"OK", self.client_address)

if __name__ == "__main__":
    with socketserver.UDPServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "5000"))), MyUDPHandler) as server:  # port from the environment
        print("listening on", server.server_address, flush=True)  # added for the tests
        server.serve_forever()
